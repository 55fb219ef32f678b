"""The app Deployment's pod spec, as rendered, run as one podman pod: every container with what
Kubernetes would give it (env and envFrom, volumes, security context, limits) on one shared
localhost, with nx-27017 standing in for MongoDB."""

import json
import os
import time
from pathlib import Path

from tests.containers.podman import STORE_IMAGE, STORE_URI, Images, Rendered, expand, fail, podman, substitution


class PodRunner:
    def __init__(self, rendered: Rendered, images: Images, secrets_made: dict, work: Path, pod: str):
        self.rendered, self.images, self.secrets, self.work, self.pod = rendered, images, secrets_made, work, pod
        self.namespace = None

    # ---- what a container gets --------------------------------------------------------------

    def config_map(self, name: str) -> dict:
        return self.rendered.get("ConfigMap", name).get("data", {})

    def secret(self, name: str) -> dict:
        if name not in self.secrets:
            fail(f"Secret {name} does not exist: the pod would stay in CreateContainerConfigError")
        return self.secrets[name]

    def downward(self, field: str) -> str:
        value = {"metadata.name": self.pod, "metadata.namespace": self.namespace,
                 "status.podIP": "127.0.0.1", "spec.nodeName": "podman-node"}.get(field)
        if value is None:
            fail(f"downward-API field {field} is not known to this test")
        substitution(f"downward API {field} -> {value}")
        return value

    def environment(self, container: dict) -> dict:
        environment = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                environment.update(self.config_map(source["configMapRef"]["name"]))
            elif "secretRef" in source:
                environment.update(self.secret(source["secretRef"]["name"]))
        for variable in container.get("env", []):
            if "value" in variable:
                environment[variable["name"]] = expand(variable["value"], environment)
                continue
            reference = variable["valueFrom"]
            if "fieldRef" in reference:
                environment[variable["name"]] = self.downward(reference["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in reference:
                key = reference["secretKeyRef"]
                value = self.secret(key["name"]).get(key["key"])
                if value is None:
                    fail(f"Secret {key['name']} has no key {key['key']}")
                environment[variable["name"]] = value
            elif "configMapKeyRef" in reference:
                key = reference["configMapKeyRef"]
                environment[variable["name"]] = self.config_map(key["name"])[key["key"]]
            else:
                fail(f"env {variable['name']}: valueFrom {list(reference)} is not known to this test")
        return environment

    def volume_files(self, volume: dict) -> Path:
        """The directory of a ConfigMap or Secret volume's files, written once per pod (several
        containers mount the same volume, as the kubelet shares one)."""
        directory = self.work / "volumes" / volume["name"]
        if directory.exists():
            return directory
        directory.mkdir(parents=True)
        if "configMap" in volume:
            source, data = volume["configMap"], self.config_map(volume["configMap"]["name"])
        else:
            source, data = volume["secret"], self.secret(volume["secret"]["secretName"])
        mode = source.get("defaultMode", 0o644)
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            path = directory / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])
            os.chmod(path, item.get("mode", mode))
        return directory

    def mounts(self, container: dict, volumes: dict) -> list[str]:
        arguments = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            if "emptyDir" in volume and "subPath" in mount:
                fail("subPath mounts of an emptyDir are not handled by this test")
            if "emptyDir" in volume:
                # A directory of mode 0777 shared by the pod's containers, as the kubelet makes an
                # emptyDir (podman's --tmpfs would take the image's owner and mode instead).
                directory = self.work / "volumes" / volume["name"]
                directory.mkdir(parents=True, exist_ok=True)
                os.chmod(directory, 0o777)
                arguments += ["-v", f"{directory}:{target}:rw"]
            elif "configMap" in volume or "secret" in volume:
                directory = self.volume_files(volume)
                # subPath: one file (or folder) of the volume, mounted over what the image has there.
                source = directory / mount["subPath"] if "subPath" in mount else directory
                if not source.exists():
                    fail(f"{container['name']}: subPath {mount['subPath']} is not in volume {mount['name']}")
                arguments += ["-v", f"{source}:{target}:{'ro' if mount.get('readOnly') else 'rw'}"]
            else:
                fail(f"volume {mount['name']}: only configMap, secret and emptyDir are handled")
        return arguments

    def security(self, container: dict) -> list[str]:
        pod_context, context = self.spec.get("securityContext", {}), container.get("securityContext", {})
        arguments = []
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        group = context.get("runAsGroup", pod_context.get("runAsGroup"))
        if user is not None:
            arguments += ["--user", f"{user}:{group}" if group is not None else str(user)]
        if context.get("readOnlyRootFilesystem"):
            arguments.append("--read-only")
        for capability in context.get("capabilities", {}).get("drop", []):
            arguments += ["--cap-drop", capability]
        if context.get("allowPrivilegeEscalation") is False:
            arguments += ["--security-opt", "no-new-privileges"]
        if pod_context.get("fsGroup") is not None:
            arguments += ["--group-add", str(pod_context["fsGroup"])]
        return arguments

    @staticmethod
    def limits(container: dict) -> list[str]:
        limits = container.get("resources", {}).get("limits", {})
        arguments = []
        if "memory" in limits:
            arguments += ["--memory", limits["memory"].replace("Mi", "m").replace("Gi", "g")]
        if "cpu" in limits:
            cpu = limits["cpu"]
            arguments += ["--cpus", str(int(cpu[:-1]) / 1000 if str(cpu).endswith("m") else cpu)]
        return arguments

    def run_container(self, container: dict, volumes: dict, environment_file: Path) -> None:
        image = self.images.local(container["image"])
        arguments = ["run", "-d", "--pod", self.pod, "--name", f"{self.pod}-{container['name']}",
                     "--env-file", str(environment_file), *self.security(container), *self.limits(container),
                     *self.mounts(container, volumes)]
        if "command" in container:
            arguments += ["--entrypoint", json.dumps(container["command"])]
        arguments.append(image)
        arguments += container.get("args", [])
        podman(*arguments)

    # ---- the pod ----------------------------------------------------------------------------

    def start(self, deployment: dict, port: int) -> None:
        self.namespace = deployment["metadata"]["namespace"]
        self.spec = deployment["spec"]["template"]["spec"]
        if self.spec.get("initContainers"):
            fail("the app pod has init containers: run them first (not handled yet)")
        substitution("host alias mongodb-0.mongodb -> the pod's loopback (the store runs in the pod)")
        podman("pod", "create", "--name", self.pod, "-p", f"127.0.0.1:{port}:8080",
               "--add-host", "mongodb-0.mongodb:127.0.0.1")
        podman("run", "-d", "--pod", self.pod, "--name", f"{self.pod}-store", "--read-only", "--tmpfs", "/tmp",
               STORE_IMAGE)
        for _ in range(100):
            probe = podman("exec", f"{self.pod}-store", "python3", "-c",
                           "import socket; socket.create_connection(('127.0.0.1', 27017), 1)", check=False)
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        volumes = {volume["name"]: volume for volume in self.spec.get("volumes", [])}
        for container in self.spec["containers"]:
            environment = self.environment(container)
            if "WORLD_MONGODB_URI" in environment:
                self.check_store_uri(environment["WORLD_MONGODB_URI"])
                environment["WORLD_MONGODB_URI"] = STORE_URI
                substitution(f"WORLD_MONGODB_URI -> {STORE_URI} (nx-27017 in the pod: no authentication)")
            environment_file = self.work / f"{container['name']}.env"
            environment_file.write_text("".join(f"{key}={value}\n" for key, value in environment.items()))
            os.chmod(environment_file, 0o600)
            self.run_container(container, volumes, environment_file)
            print(f"    started {container['name']}", flush=True)

    def check_store_uri(self, uri: str) -> None:
        """What world-service would have used: mongodb-app's user, on its own database."""
        app = self.secret("mongodb-app")
        expected = f"mongodb://{app['username']}:{app['password']}@mongodb-0.mongodb:27017/hello?authSource=hello"
        if uri != expected:
            fail("the rendered WORLD_MONGODB_URI is not mongodb-app's user on database hello "
                 "(the value is not printed: it holds a password)")
        print("    WORLD_MONGODB_URI as rendered: mongodb-app's user (world-service), database hello, authSource hello")
