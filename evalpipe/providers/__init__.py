"""Provider SDK calls, cross-provider translation and prices."""
