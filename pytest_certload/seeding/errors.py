"""Seeding errors, each naming the table/column at fault and the fix."""


class SeedingError(RuntimeError):
    """Base class: seeding could not do what the fleet asked."""


class SchemaMismatch(SeedingError):
    """The database lacks a table/column/row the fleet needs (checked before any COPY)."""


class SeedVerificationError(SeedingError):
    """After seeding, fewer rows than expected exist."""


class SeedRefused(SeedingError):
    """Seeding a database the plugin did not start, without --certload-allow-external-load."""


class CleanupRefused(SeedingError):
    """The database would not let us delete the fleet's rows (e.g. a RESTRICT foreign key)."""
