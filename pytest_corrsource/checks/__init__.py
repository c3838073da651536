"""The checks: plain functions over a parsed manifest, testable without pytest.

``api`` is what a check receives and returns; one module per component holds the functions
the registry (``catalogue.py``) names in each spec's ``run=``.
"""
