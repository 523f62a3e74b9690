"""pytest plugin (loaded through ``-p tests.scale_plugin``): every test and every notebook
kernel started by nbval runs at the ``fast`` scale, and without live widgets (an executed
notebook has nobody to move a slider; ``gnilab.plotting.explore`` then draws its static figure
only)."""
import os

os.environ["GNILAB_SCALE"] = "fast"
os.environ["GNILAB_WIDGETS"] = "0"
