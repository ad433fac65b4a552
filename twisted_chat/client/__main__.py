"""
C{python -m twisted_chat.client}: run the bundled client.
"""

from .main import run

run()
