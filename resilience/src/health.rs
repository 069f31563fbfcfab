//! Health of the whole job, from the statistics of the three layers.
