from setuptools import Extension, setup

setup(name="cxfast", version="0.3.0", ext_modules=[Extension("cxfast", ["cxfast.c"])])
