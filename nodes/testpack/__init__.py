"""The test pack: tiny random-weight models built locally, saved and registered through
the same paths real models use. ``homepilot models install-test-pack`` builds it."""
