"""The words of SQL the grammar and the judgement know: keywords, statement heads,
functions an injection calls, system catalogues and procedures."""

from __future__ import annotations

import re

LOGIC_WORDS = frozenset({"and", "or", "xor"})
LOGIC_OPS = frozenset({"||", "&&"})
CLOSERS = {"[": "]", "{": "}"}
JSON_OPS = frozenset({"<@", "@>", "?|", "?&", "@?", "@@"})
CMP_OPS = frozenset(
    {"=", "<>", "!=", "<", ">", "<=", ">=", "<=>", "==", "!<", "!>", "<@", "@>", "?", "?|", "?&", "@?", "@@"}
)  # the last ones: PostgreSQL JSON containment and key tests
CMP_WORDS = frozenset({"like", "rlike", "regexp", "ilike", "glob", "similar"})
BIN_OPS = frozenset({"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", ":=", "->", "->>"})
BIN_WORDS = frozenset({"div", "mod", "collate", "escape"})
UNARY_OPS = frozenset({"-", "+", "~", "!"})
UNARY_WORDS = frozenset({"not", "binary", "interval", "prior", "distinct", "all", "any", "some"})
LITERAL_WORDS = frozenset({"null", "true", "false", "unknown", "default"})
# Niladic functions of the standard: operands without parentheses that leak information.
INFO_WORDS = frozenset(
    {"current_user", "session_user", "system_user", "current_schema", "current_database", "user_name"}
)
POSTFIX_WORDS = frozenset({"notnull", "isnull"})
# Operand kinds that are literals ("strt": a string MySQL reads as a non-zero number, so true).
LITS = frozenset({"num", "str", "strt", "lit"})
TRUTHY = re.compile(r"\s*[+-]?(?:0*[1-9]|0*\.0*[1-9])")
#: Reserved words that are also function names: an operand only when "(" follows.
CALLABLE_RESERVED = frozenset({"like", "glob", "replace", "insert", "mod", "if", "left", "right", "values"})
CLAUSE_WORDS = frozenset(
    {"where", "having", "limit", "offset", "from", "order", "group", "procedure", "into"}
)

#: Reserved words prose also uses: "x' and y --" is no evidence, "x' collate y --" is.
PROSE_KEYWORDS = frozenset({"and", "or", "not", "as", "xor", "to", "of", "for", "with", "on", "by"})

#: Words SQL reserves: never an identifier, so prose that puts one where an operand
#: or an alias belongs stops the parse.
RESERVED = frozenset(
    {
        "select", "from", "where", "union", "intersect", "except", "order", "group", "by", "having",
        "into", "and", "or", "xor", "not", "is", "in", "like", "rlike", "regexp",
        "between", "case", "when", "then", "else", "end", "as", "on", "join", "values", "set", "div",
        "mod", "exists", "procedure", "outfile", "dumpfile", "waitfor", "insert", "update", "delete",
        "drop", "create", "alter", "truncate", "exec", "execute", "declare", "table", "escape",
        "collate", "asc", "desc", "using", "for", "with", "to", "of", "natural", "inner", "outer",
        "cross", "straight_join", "glob", "ilike", "similar", "shutdown", "grant", "revoke", "use",
        "top", "distinctrow", "rollup", "minus", "returns", "return", "begin", "call",
    }
)  # fmt: skip

#: Type names of a PostgreSQL cast (``x::int``).
SQL_TYPES = frozenset(
    {"int", "integer", "int2", "int4", "int8", "smallint", "bigint", "numeric", "decimal", "real",
     "float", "float4", "float8", "double", "text", "varchar", "char", "character", "bool", "boolean",
     "json", "jsonb", "xml", "bytea", "date", "timestamp", "time", "interval", "uuid", "inet", "oid",
     "regclass", "name", "money", "bit", "varbit", "tsvector", "record"}
)  # fmt: skip

#: Words that end an expression or a clause: never an alias after AS.
STRUCTURAL = frozenset(
    {"select", "from", "where", "union", "group", "order", "having", "and", "or", "xor", "not", "on",
     "join", "into", "when", "then", "else", "end", "as", "by", "is", "in", "like", "between"}
)  # fmt: skip

#: Statement heads after ``;`` (or where MSSQL lets a statement follow without one),
#: with the words that must come next for the head to be a statement and not prose.
STMT_NEXT: dict[str, frozenset[str] | None] = {
    "insert": frozenset({"into", "ignore", "low_priority", "delayed", "high_priority"}),
    "replace": None,  # [INTO] name
    "delete": frozenset({"from"}),
    "drop": frozenset(
        {"table", "database", "schema", "function", "procedure", "view", "user", "index", "trigger",
         "login", "temporary", "if", "event", "sequence", "role"}
    ),
    "create": frozenset(
        {"table", "database", "schema", "function", "procedure", "view", "user", "index", "trigger",
         "login", "or", "temporary", "definer", "event", "role", "sequence", "unique", "aggregate"}
    ),
    "alter": frozenset({"table", "database", "user", "login", "view", "procedure", "function", "system",
                        "session", "role", "schema"}),
    "truncate": None,  # [TABLE] name
    "rename": frozenset({"table", "user"}),
    "grant": None,
    "revoke": None,
    "shutdown": None,
    "waitfor": frozenset({"delay", "time"}),
    "declare": None,  # a variable must follow
    "set": None,  # a variable or a name, then =
    "exec": None,
    "execute": None,
    "call": None,  # a procedure call
    "copy": None,
    "backup": frozenset({"database", "log"}),
    "restore": frozenset({"database", "log"}),
    "load": frozenset({"data", "xml"}),
    "prepare": None,
    "deallocate": frozenset({"prepare"}),
    "show": frozenset({"tables", "databases", "columns", "grants", "variables", "processlist", "status",
                       "schemas", "full", "create", "global", "session"}),
    "lock": frozenset({"tables", "table"}),
    "unlock": frozenset({"tables"}),
    "attach": frozenset({"database"}),
    "begin": None,
    "if": None,
    "update": None,  # a table, then SET
    "select": None,
    "kill": None,
    "dbcc": None,
    "handler": None,
    "do": None,
    "use": None,
}  # fmt: skip
#: Every keyword (for the odd-case evasion check and the prose check after a break-out).
KEYWORDS = RESERVED | frozenset(STMT_NEXT) | LITERAL_WORDS | POSTFIX_WORDS | CMP_WORDS

#: Statement words that also start prose or a plain value ("Set up", "Shutdown at 5"): no
#: statement head when they begin an unquoted value.
NOT_AT_START = frozenset({"if", "do", "use", "begin", "set", "call", "kill", "handler", "shutdown"})

#: Statements MSSQL accepts without a ``;`` in front (``1' WAITFOR DELAY '0:0:5'``).
IMPLICIT_STMT = frozenset({"waitfor", "exec", "execute", "declare", "shutdown", "dbcc"})

#: Functions (and a few other names) only SQL has: string building, information about
#: the server, time delays, error-based extraction, file and network access.
FN_SQL = frozenset(
    {
        "sleep", "benchmark", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "randomblob", "extractvalue",
        "updatexml", "xmltype", "load_file", "load_extension", "version", "database", "schema", "user",
        "current_user", "system_user", "session_user", "db_name", "user_name", "suser_name", "suser_sname",
        "host_name", "is_srvrolemember", "connection_id", "last_insert_id", "sqlite_version",
        "pg_read_file", "pg_ls_dir", "pg_read_binary_file", "lo_import", "lo_export", "lo_get", "lo_put",
        "sys_eval", "sys_exec", "dblink", "openrowset", "opendatasource", "openquery", "xp_cmdshell",
        "xp_dirtree", "xp_regread", "xp_fileexist", "receive_message", "get_host_address",
        "get_host_name", "drithsx", "name_const", "geometrycollection", "multipoint", "multilinestring",
        "multipolygon", "linestring", "gtid_subset", "json_keys", "make_set", "elt",
        "sqlite_compileoption_used",
        "sqlite_compileoption_get", "regexp_substring", "crypt_key", "generate_series", "utl_http",
        "utl_inaddr", "dbms_pipe", "dbms_lock", "user_lock", "current_database", "schema_name",
        "group_concat", "concat_ws", "unhex", "sysdate", "ifnull", "nvl", "iif", "ascii", "substring",
        "substr", "concat", "char", "chr", "nchar", "hex", "mid", "ord", "coalesce", "cast", "convert",
        "string_agg", "listagg", "xmlagg", "json_extract", "json_build_object", "jsonb_pretty",
        "to_base64", "from_base64", "md5", "sha1", "sha2", "compress", "uncompress", "lpad", "rpad",
        "instr", "locate", "strcmp", "unistr", "starts_with", "overlay", "pg_catalog", "exp", "floor",
        "current_setting", "inet_server_addr", "pg_postmaster_start_time", "banner", "dbms_utility",
        "sqlid_to_sqlhash", "dbms_xmlgen", "getxml", "ctxsys", "ordsys", "bitand", "rownum",
    }
)  # fmt: skip
#: Calls that are an injection wherever they parse: delays and error-based extraction.
FN_ATTACK = frozenset(
    {"sleep", "benchmark", "pg_sleep", "extractvalue", "updatexml", "load_file", "randomblob"}
)
#: Calls a value may be made of alone (``sleep(5)``, ``database()``, ``concat(0x7e,``)
#: rather than a call inside an injected condition.
FN_ALONE = frozenset(
    {
        "sleep", "benchmark", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "randomblob", "extractvalue",
        "updatexml", "xmltype", "load_file", "load_extension", "db_name", "suser_name", "suser_sname",
        "is_srvrolemember", "sqlite_version", "pg_read_file", "pg_ls_dir", "pg_read_binary_file",
        "lo_import", "lo_export", "lo_get", "lo_put", "sys_eval", "sys_exec", "dblink", "openrowset",
        "opendatasource", "openquery", "xp_cmdshell", "xp_dirtree", "xp_regread", "xp_fileexist",
        "receive_message", "get_host_address", "get_host_name", "drithsx", "name_const",
        "geometrycollection", "multipoint", "multilinestring", "multipolygon", "gtid_subset",
        "make_set", "sqlite_compileoption_used", "sqlite_compileoption_get", "regexp_substring",
        "current_database", "schema_name", "group_concat", "concat_ws", "unhex", "sysdate", "ifnull",
        "string_agg", "json_build_object", "jsonb_pretty", "unistr", "database", "version", "find_in_set",
        "current_user", "system_user", "session_user", "user_name", "connection_id", "coalesce", "user",
        "compress", "uncompress", "concat", "md5", "strcmp", "substr", "substring", "xmlelement",
        "current_setting", "utl_http", "utl_inaddr", "dbms_pipe", "dbms_lock",
    }
)  # fmt: skip
#: SQL functions named like English words: a call of one on a lone bare name is prose.
WORD_FNS = frozenset(
    {"sleep", "user", "database", "version", "schema", "compress", "uncompress", "concat", "coalesce",
     "substring", "substr", "char", "ascii", "mid", "hex", "floor", "exp", "cast", "convert", "instr",
     "locate", "overlay", "banner", "nchar", "ord", "elt", "benchmark", "trim", "left", "right", "if"}
)  # fmt: skip

#: Names of system catalogues and objects (as a whole name or one part of a dotted one).
SYSOBJ = frozenset(
    {
        "information_schema", "sysobjects", "syscolumns", "sysusers", "sysdatabases", "systables",
        "syslogins", "sysprocesses", "all_tables", "all_tab_columns", "all_users", "user_tables",
        "user_tab_columns", "dba_users", "dba_tables", "dba_role_privs", "pg_catalog", "pg_shadow",
        "pg_user", "pg_group", "pg_database", "pg_tables", "pg_authid", "pg_roles", "msysobjects",
        "msysaccessobjects", "msysqueries", "sqlite_master", "sqlite_schema", "sqlite_temp_master",
        "sysibm", "syscat", "rdb$fields", "rdb$types", "rdb$collations", "rdb$functions",
        "rdb$relations", "rdb$database", "v$instance", "v$version", "v$database", "user$", "mysql",
        "master", "tempdb", "msdb", "dual", "sysmaster", "domain",
    }
)  # fmt: skip
#: Server procedures and packages an injection calls (MSSQL, Oracle): never ordinary values.
SYSPROC = frozenset(
    {"xp_cmdshell", "xp_dirtree", "xp_regread", "xp_regwrite", "xp_fileexist", "xp_subdirs",
     "xp_servicecontrol", "xp_availablemedia", "xp_terminate_process", "xp_loginconfig",
     "xp_ntsec_enumdomains", "xp_regdeletekey", "xp_makecab", "sp_executesql", "sp_oacreate",
     "sp_oamethod", "sp_password", "sp_addlogin", "sp_addsrvrolemember", "sp_configure",
     "sp_makewebtask", "sp_adduser", "sp_addextendedproc", "openrowset", "opendatasource",
     "utl_http", "utl_inaddr", "utl_file", "dbms_pipe", "dbms_lock", "dbms_java", "msdasql"}
)  # fmt: skip

#: Catalogue names specific enough to be an injection as the whole value.
SYSOBJ_ALONE = frozenset(
    {"information_schema", "sysobjects", "syscolumns", "pg_catalog", "pg_shadow", "msysobjects",
     "msysaccessobjects", "sqlite_master", "all_tab_columns", "sysdatabases", "tempdb", "msdb",
     "schema_name", "pg_authid", "sysusers", "mysql.user", "mysql.db", "sys.user$", "sys.objects",
     "master.dbo", "sys.sql_logins", "sys.databases"}
)  # fmt: skip


#: Keywords the odd-case check counts (UnIoN SeLeCt): the ones PREFILTER looks for.
PREFILTER_WORDS = frozenset({"union", "select", "having", "waitfor", "order", "group", "case"})
