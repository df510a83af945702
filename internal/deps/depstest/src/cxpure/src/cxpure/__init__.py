"""A pure-Python test package built by the Cortex tests."""


def greet(name):
    return "hello, %s, from cxpure" % name
