"""The plugin core: the hooks a plugin implements (:mod:`.hookspecs`), the specs it hands back
(:mod:`.specs`), finding and loading plugins, installed or plain files (:mod:`.plugins`,
:mod:`.plugin_files`), the registry that lists and builds components (:mod:`.registry`), and the
callback protocol that the training loop and the plugins' callbacks share (:mod:`.callbacks`).

Imports: only the top-level modules (:mod:`mlbasics.errors`, ...). Every other package stands on
this one. (:meth:`Registry.isolated` loads :mod:`mlbasics.builtin` as it loads any plugin.)
"""
