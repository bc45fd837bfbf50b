# Types of the compiled core (cpp/bindings/*.cpp). Keep in step with the bindings: mypy checks
# the Python layer against this file, and tests exercise the real module.
from collections.abc import Callable, Sequence
from os import PathLike
from typing import ClassVar

__version__: str

class Result:
    columns: list[str]
    rows: list[tuple[str | None, ...]]
    status: str
    rowcount: int

class Connection:
    def __init__(
        self, dsn: str = "", application_name: str = "pgsafe", connect_timeout: float = 10.0
    ) -> None: ...
    def execute(self, sql: str, params: Sequence[str | None] | None = None) -> Result: ...
    def copy_out(self, sql: str, on_row: Callable[[bytes], object]) -> int: ...
    def cancel(self) -> bool: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def backend_pid(self) -> int: ...
    @property
    def server_version(self) -> int: ...
    @property
    def transaction_status(self) -> str: ...
    @property
    def dbname(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> str: ...
    @property
    def dsn(self) -> str: ...
    def __enter__(self) -> Connection: ...
    def __exit__(self, *args: object) -> None: ...

def sleep(seconds: float) -> None: ...
def conninfo_parse(dsn: str) -> list[tuple[str, str]]: ...

class Statement:
    """Plain struct the executor and tracer run; built by
    pgsafe.analysis.statement.Statement.to_core()."""

    sql: str
    offset: int
    line: int
    column: int
    end_line: int
    kind: str
    transaction_control: str
    non_transactional: bool
    reason: str
    new_step: bool
    timeout_class: str
    index_name: str
    index_schema: str
    index_table: str
    sets_local: bool
    sets_lock_timeout: bool
    sets_statement_timeout: bool
    parts: list[StatementPart]
    def __init__(self) -> None: ...

class StatementPart:
    """One statement of a batch: its byte range in the batch's sql, its place in the file."""

    start: int
    end: int
    line: int
    column: int
    def __init__(self, start: int, end: int, line: int, column: int) -> None: ...

def line_column(text: str, byte_offset: int) -> tuple[int, int]: ...
def sha256_hex(data: bytes) -> str: ...
def sha256_file(path: str | PathLike[str]) -> str: ...
def set_log_level(level: int) -> None: ...
def _log(level: int, message: str) -> None: ...

class _Enum:
    """What every enum of the core (a pybind11 py::enum_) has."""

    def __init__(self, value: int) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __int__(self) -> int: ...
    def __ne__(self, other: object) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class Timeouts:
    lock_timeout_ms: int
    statement_timeout_ms: int
    long_statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int

class RetryPolicy:
    max_attempts: int
    base_delay_ms: int
    max_delay_ms: int
    def delay_seconds(self, attempt: int) -> float: ...

class Direction(_Enum):
    """Which script of a migration a plan runs."""

    up: ClassVar[Direction]
    down: ClassVar[Direction]
    __members__: ClassVar[dict[str, Direction]]

class MigrationPlan:
    version: str
    name: str
    checksum: str
    direction: Direction
    statements: list[Statement]

class EventKind(_Enum):
    """What an executor Event reports."""

    segment_start: ClassVar[EventKind]
    statement_done: ClassVar[EventKind]
    retry: ClassVar[EventKind]
    retries_exhausted: ClassVar[EventKind]
    index_invalid: ClassVar[EventKind]
    index_rebuilt: ClassVar[EventKind]
    index_dropped: ClassVar[EventKind]
    dirty: ClassVar[EventKind]
    committed: ClassVar[EventKind]
    __members__: ClassVar[dict[str, EventKind]]

class Event:
    kind: EventKind
    version: str
    segment: int
    statement: int
    attempt: int
    seconds: float
    sqlstate: str
    message: str

class ExecResult:
    status: str
    attempts: int
    retries: int
    duration_s: float
    statements: int
    rebuilt_indexes: list[str]

class LedgerRow:
    version: str
    name: str
    checksum: str
    status: str
    applied_at: str
    applied_by: str
    pgsafe_version: str
    dirty_reason: str
    duration_s: float
    retries: int

class Ledger:
    def __init__(self, schema: str = "pgsafe") -> None: ...
    @property
    def schema(self) -> str: ...
    def ensure(self, conn: Connection) -> None: ...
    def exists(self, conn: Connection) -> bool: ...
    def rows(self, conn: Connection) -> list[LedgerRow]: ...
    def set_status(
        self, conn: Connection, version: str, status: str, reason: str, by: str
    ) -> None: ...
    def set_checksum(
        self, conn: Connection, version: str, checksum: str, reason: str, by: str
    ) -> None: ...

class Executor:
    def __init__(
        self,
        conn: Connection,
        ledger: Ledger,
        timeouts: Timeouts,
        retry: RetryPolicy,
        applied_by: str,
        pgsafe_version: str,
        on_event: Callable[[Event], None] | None = None,
    ) -> None: ...
    def run(self, plan: MigrationPlan) -> ExecResult: ...
    def guard_with_lock(self, pid: int, key: int) -> None: ...
    @property
    def left_dirty(self) -> bool: ...
    @property
    def failed_at(self) -> tuple[int, int]: ...

class LockHolder:
    pid: int
    application_name: str
    usename: str
    client: str
    state: str
    since: str

class MigrationLock:
    def __init__(self, session: Connection, key: int) -> None: ...
    def acquire(self, deadline_s: float, backoff: RetryPolicy) -> None: ...
    def try_acquire(self) -> bool: ...
    def holder(self) -> LockHolder | None: ...
    def release(self) -> None: ...
    def check_alive(self) -> None: ...
    @property
    def held(self) -> bool: ...

def migration_lock_key(ledger_schema: str) -> int: ...

class SchemaObject:
    def __init__(self, kind: str, name: str, definition: str) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def definition(self) -> str: ...

class SchemaFingerprint:
    @property
    def objects(self) -> list[SchemaObject]: ...
    @property
    def sha256(self) -> str: ...
    @property
    def server_version(self) -> int: ...

def schema_fingerprint(conn: Connection, exclude_schemas: Sequence[str]) -> SchemaFingerprint: ...
def schema_canonical_text(objects: Sequence[SchemaObject]) -> str: ...
def schema_digest(objects: Sequence[SchemaObject]) -> str: ...

class RowDigest:
    def __init__(self) -> None: ...
    def add(self, row: bytes) -> None: ...
    def merge(self, other: RowDigest) -> None: ...
    @property
    def rows(self) -> int: ...
    def hex(self) -> str: ...

class TableFingerprint:
    table: str
    rows: int
    digest: str
    bytes: int
    seconds: float
    chunks: int

class FingerprintProgress:
    chunks_done: int
    chunks_total: int
    rows: int
    bytes: int

DEFAULT_CHUNK_PAGES: int

def fingerprint_tables(
    dsn: str,
    tables: Sequence[str] = ...,
    exclude_schemas: Sequence[str] = ...,
    workers: int = 2,
    chunk_pages: int = 0,
    application_name: str = "pgsafe-fingerprint",
    progress: Callable[[FingerprintProgress], None] | None = None,
) -> list[TableFingerprint]: ...

class LockMode(_Enum):
    """A lock mode, named as pg_locks names it: the eight table lock modes weakest first, then
    SIReadLock (a SERIALIZABLE predicate lock)."""

    AccessShareLock: ClassVar[LockMode]
    RowShareLock: ClassVar[LockMode]
    RowExclusiveLock: ClassVar[LockMode]
    ShareUpdateExclusiveLock: ClassVar[LockMode]
    ShareLock: ClassVar[LockMode]
    ShareRowExclusiveLock: ClassVar[LockMode]
    ExclusiveLock: ClassVar[LockMode]
    AccessExclusiveLock: ClassVar[LockMode]
    SIReadLock: ClassVar[LockMode]
    __members__: ClassVar[dict[str, LockMode]]

# The live probe (cpp/bindings/probe_py.cpp).
class SessionInfo:
    pid: int
    usename: str
    application_name: str
    client: str
    state: str
    query: str
    wait_event_type: str
    wait_event: str
    xact_seconds: float
    state_seconds: float
    backend_xmin: str

class BlockingEdge:
    blocked_pid: int
    blocked_query: str
    blocked_wait_seconds: float
    blocked_mode: LockMode
    locktype: str
    relation: str
    blocking_pid: int
    blocking_query: str
    blocking_state: str
    blocking_xact_seconds: float
    blocking_modes: str
    blocking_granted: bool

class LockEntry:
    pid: int
    mode: LockMode
    granted: bool
    state: str
    query: str
    application_name: str
    seconds: float

class LockQueue:
    relation: str
    holders: list[LockEntry]
    waiters: list[LockEntry]

class VacuumRun:
    pid: int
    relation: str
    phase: str
    autovacuum: bool
    wraparound: bool
    seconds: float
    heap_blks_total: int
    heap_blks_scanned: int
    query: str
    def __init__(
        self,
        pid: int,
        relation: str,
        phase: str,
        autovacuum: bool,
        wraparound: bool,
        seconds: float,
        heap_blks_total: int,
        heap_blks_scanned: int,
        query: str,
    ) -> None: ...

class ReplicaLag:
    pid: int
    application_name: str
    client: str
    state: str
    sync_state: str
    replay_lag_bytes: int | None
    replay_lag_seconds: float | None

class ProbeResult:
    server_version: int
    probe_pid: int
    database: str
    probed_at: str
    long_tx_seconds: float
    relations: list[str]
    unknown_relations: list[str]
    long_transactions: list[SessionInfo]
    idle_in_transaction: list[SessionInfo]
    blocking: list[BlockingEdge]
    lock_queues: list[LockQueue]
    vacuums: list[VacuumRun]
    replication: list[ReplicaLag]

def probe(
    conn: Connection,
    relations: Sequence[str] = ...,
    long_tx_seconds: float = 30.0,
    lock_timeout_ms: int = 1000,
    statement_timeout_ms: int = 5000,
) -> ProbeResult: ...

# Lock tracing (cpp/bindings/trace_py.cpp).
class ObservedLock:
    relation: str
    relkind: str
    mode: LockMode
    granted: bool
    blocks_select: bool
    blocks_writes: bool
    blocks_for_update: bool

class ColumnChange:
    relation: str
    column: str
    what: str
    before: str
    after: str

class ConstraintChange:
    relation: str
    name: str
    type: str
    what: str
    definition: str
    validated: bool

class StatementTrace:
    index: int
    line: int
    sql: str
    non_transactional: bool
    sampled: bool
    samples: int
    duration_s: float
    lock_hold_s: float
    locks: list[ObservedLock]
    held: list[ObservedLock]
    rewrites: list[str]
    index_rebuilds: list[str]
    column_changes: list[ColumnChange]
    constraint_changes: list[ConstraintChange]
    error: str
    sqlstate: str

class UnindexedForeignKey:
    relation: str
    constraint_name: str
    columns: list[str]
    references: str

class MigrationTrace:
    statements: list[StatementTrace]
    unindexed_foreign_keys: list[UnindexedForeignKey]
    duration_s: float
    committed: bool
    error: str

class TraceOptions:
    application_name: str
    lock_timeout_ms: int
    statement_timeout_ms: int
    gate_max_s: float
    commit: bool
    def __init__(self) -> None: ...

def lock_mode_rank(mode: LockMode) -> int: ...
def lock_conflicts(held: LockMode, requested: LockMode) -> bool: ...
def trace_migration(
    dsn: str,
    statements: Sequence[Statement],
    gate_relations: Sequence[Sequence[str]] = ...,
    options: TraceOptions = ...,
) -> MigrationTrace: ...

# backup (cpp/bindings/backup_py.cpp)
class Compression(_Enum):
    """How each chunk of a backup file is compressed."""

    zstd: ClassVar[Compression]
    gzip: ClassVar[Compression]
    __members__: ClassVar[dict[str, Compression]]

class BackupChunk:
    index: int
    kind: str
    table: str
    first_page: int
    end_page: int
    offset: int
    length: int
    rows: int
    raw_bytes: int
    sha256: str
    def __init__(self) -> None: ...

class BackupTableInfo:
    table: str
    columns: str
    has_generated: bool
    pages: int
    rows: int
    digest: str
    bytes: int
    chunks: int

class BackupProgress:
    chunks_done: int
    chunks_total: int
    rows: int
    raw_bytes: int
    written: int

class RestoreProgress:
    chunks_done: int
    chunks_total: int
    rows: int
    bytes: int

ENCRYPTED_MAGIC: bytes

class BackupOptions:
    """What a BackupWriter backs up, and how."""

    tables: list[str]
    exclude_schemas: list[str]
    workers: int
    chunk_pages: int
    compression: Compression
    level: int
    key: bytes
    file_id: str
    application_name: str
    on_progress: Callable[[BackupProgress], None] | None
    def __init__(self) -> None: ...

class BackupWriter:
    def __init__(self, dsn: str, path: str, options: BackupOptions = ...) -> None: ...
    @property
    def snapshot(self) -> str: ...
    @property
    def server_version(self) -> int: ...
    @property
    def tables(self) -> list[BackupTableInfo]: ...
    def sequence_values_sql(self) -> str: ...
    def add_section(self, kind: str, sql: bytes) -> BackupChunk: ...
    def copy_data(self) -> None: ...
    def finish(self) -> list[BackupChunk]: ...

def read_backup_chunk(
    path: str, chunk: BackupChunk, compression: Compression, key: bytes = b"", file_id: str = ""
) -> bytes: ...
def check_backup_chunk(path: str, chunk: BackupChunk) -> None: ...
def copy_text_to_binary(type_oids: Sequence[int], text: bytes) -> bytes | None: ...

class RestoreOptions:
    """How restore_backup_chunks loads the data."""

    workers: int
    compression: Compression
    key: bytes
    file_id: str
    application_name: str
    binary: bool
    freeze: bool
    split_largest: bool
    maintenance_work_mem: str
    after_table: dict[str, list[str]]
    on_progress: Callable[[RestoreProgress], None] | None
    def __init__(self) -> None: ...

def restore_backup_chunks(
    dsn: str, path: str, chunks: Sequence[BackupChunk], options: RestoreOptions = ...
) -> int: ...
