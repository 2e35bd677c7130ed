"""Games beside case openings: upgrades, case battles. Each money move goes through money/."""
