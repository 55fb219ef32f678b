"""What the suites share: the pod harness (pod.py, cluster.py), processes, ports, nginx
configuration for loopback, and stand-ins (the Kubernetes API, an OTLP receiver)."""
