"""The SQL parser: one module per part of SQL, each a set of functions over an explicit
:class:`~.state.ParseState`; :mod:`.parser` drives them token by token."""
