"""glue-bench: Houlsby adapters versus full fine-tuning on GLUE, under DeepSpeed."""

__version__ = "0.1.0"
