"""Command-line interface: ``geomtax ablation | audit | sweep | bench``."""
