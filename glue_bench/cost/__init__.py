"""Cost: what a job costs as arithmetic, the prepared model's shape, calibrations and their measurement, and the
one price path that the sweep estimate and the live ETA share."""
