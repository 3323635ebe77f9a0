"""Fleet insight: benchmarks (a fixed prompt set run on chosen nodes x models by a supervised runner), the
recommender (pure advice from usage, benchmarks and memory) and their priors for routing."""
