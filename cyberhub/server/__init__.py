"""The running service: builds the app, starts, recovers interrupted
operations, shuts down. The only cyberhub package that imports handlers.
"""
