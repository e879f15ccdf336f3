"""sspa_core: Split-and-Synthesize Prompting with Gated Alignments (SSPA) for
multi-label image recognition, one module per idea, mirroring the notebooks."""

__version__ = "0.1.0"
