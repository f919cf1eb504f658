"""`edgepeft bench`: the teacher, the backends' one-line baselines and the student measured side by side, the
FLOP floor, and the report."""
