"""xlexp: an experiment harness for cross-lingual transfer learning."""

__version__ = "0.1.0"
