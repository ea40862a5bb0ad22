"""ROS 2 layer: message conversions, nodes, synchronisation, TF and diagnostics over the core."""
