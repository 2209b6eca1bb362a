"""``python -m webhook`` is the same as the ``deployguard`` command."""

from webhook.cli import main

main()
