"""The ``twin`` stage (issue 18): prove a run's rendered artifacts on a throwaway twin of the model's
switches before production is touched (:mod:`workers.twin.stage`)."""
