"""Scoring trained models: metrics from a confusion matrix, reports and plots."""
