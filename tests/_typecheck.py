"""The runtime type checker for the shape-check tier: beartype with PEP 484's numeric tower.

PEP 484 lets an ``int`` stand where ``float`` is annotated (and ``float`` where ``complex`` is);
beartype follows it only when asked.
"""

from beartype import BeartypeConf, beartype

check = beartype(conf=BeartypeConf(is_pep484_tower=True))
