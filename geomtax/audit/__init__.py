"""geomtax.audit (outer namespace; may use Flax)."""

__all__: list[str] = []
