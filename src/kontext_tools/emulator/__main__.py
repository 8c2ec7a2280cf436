"""`python -m kontext_tools.emulator`: the emulator's own command."""

from kontext_tools.emulator.command import main

raise SystemExit(main())
