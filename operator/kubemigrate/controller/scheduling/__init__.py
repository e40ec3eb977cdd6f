"""The pure scheduling core of DatabaseBackupSchedule: cron times in a time zone, and CronJob's
rules for missed runs, starting deadlines, concurrency and history. No I/O, no clock of its own:
every function takes `now`, so unit tests pin it."""
