"""An example beats plugin: the ``jsonl`` dataset loader and the ``maxmean`` pooling.

beats loads :mod:`beats_plugin_example.hooks` through the ``beats`` entry point of this
package's ``pyproject.toml``; the loader and the pooling themselves live in
:mod:`beats_plugin_example.manifest` and :mod:`beats_plugin_example.pooling`.
"""
