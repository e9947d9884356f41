import sys

from eyepurify.cli import main

sys.exit(main())
