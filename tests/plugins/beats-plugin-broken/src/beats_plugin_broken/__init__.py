"""A plugin that fails at import, as a plugin with a missing dependency does."""

import this_module_does_not_exist
