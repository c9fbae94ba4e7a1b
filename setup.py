# cffi's setuptools hook lives here: pyproject.toml has no key for cffi_modules.
from setuptools import setup

setup(cffi_modules=["csrc/build.py:ffibuilder"])
