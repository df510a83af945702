"""A test package that reaches the network when imported (Cortex refuses it)."""
import urllib.request

CONFIG = urllib.request.urlopen("http://config.example.com/settings.json", timeout=5).read()
