"""pytest plugin (loaded through ``-p tests.scale_plugin``): every test and every notebook
kernel started by nbval runs at the ``fast`` scale."""
import os

os.environ["GNILAB_SCALE"] = "fast"
