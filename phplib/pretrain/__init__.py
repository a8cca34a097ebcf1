"""Contrastive pretraining of the tiny towers on a captioned toy world (``python -m phplib pretrain``)."""
