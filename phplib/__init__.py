"""phplib: progressive homeostatic and plastic prompt tuning for audio-visual incremental learning."""

__version__ = "0.1.0"
