"""The Azure Machine Learning provider of mlport (to come) and its local Azure ML emulator.

Until the provider lands this distribution declares no ``mlport.providers`` entry point: it ships
:mod:`mlport_azureml.emulator`, which tests and users drive with the real azure-ai-ml SDK.
"""
