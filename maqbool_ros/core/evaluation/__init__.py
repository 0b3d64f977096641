"""Scoring loop-closure candidates against ground truth: the offline protocol that runs a
dataset through the pipeline, recall@N / precision-recall / latency metrics, and the
JSON / CSV / plot reports."""
