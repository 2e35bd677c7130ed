"""The store boundary: the only package that imports the MongoDB driver or the
embedded store.
"""
