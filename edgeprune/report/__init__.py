from edgeprune.report.widths import widths_svg

__all__ = ["widths_svg"]
