"""Evaluation: policies x day types x seeds on the twin, tables a sortation engineer reads."""
