"""The digital twin of a robotic sortation floor: scenarios, demand, simulation, env."""
