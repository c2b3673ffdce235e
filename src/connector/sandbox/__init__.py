"""Local, faithful simulators of AFAS Profit and Spotler Mail+ over real HTTP."""
