#!/usr/bin/env python3
"""Turn rendered Kubernetes manifests into a docker-compose file (format 2.4, docker-compose v1).

Each replica of each Deployment and StatefulSet becomes one compose service, run as the kubelet
would run that pod:

* image, command (k8s `command` -> compose `entrypoint`, `args` -> `command`), working dir;
* env with `$(VAR)` references expanded and Downward API fields filled in: metadata.name is the
  pod name (`sluice-executor-0` for StatefulSet ordinal 0, `sluice-driver-0` for the first
  Deployment replica), status.podIP a static address on the compose network, metadata.namespace
  the object's namespace;
* ConfigMap volumes written as files under <out>/configmaps/<name>/ and bind-mounted read-only;
  a PersistentVolumeClaim bind-mounted from --data-dir (with several claims, one subdirectory
  per claim); emptyDirs as tmpfs; a required Secret volume bind-mounted read-only from
  <--secrets-dir>/<secret name>/ — a directory holding one file per key, which the generator does
  not write (Secrets never go into generated files; deploy/compose/dev-secrets.sh makes
  development stand-ins for sluice's); optional Secret volumes are left out;
* the security context: user, fsGroup (as a supplementary group), read-only root filesystem,
  dropped capabilities, no-new-privileges; CPU and memory limits; the grace period on stop;
* DNS as in the cluster: the hostname is the pod name; every Service selecting the pod adds its
  name as a network alias (also as `<service>.<namespace>.svc` and `….svc.cluster.local`), and a
  StatefulSet's headless Service adds `<pod>.<service>` and `<pod>.<service>.<namespace>.svc`
  (and `….svc.cluster.local`) too.

Probes cannot become compose healthchecks (the image has no shell and no curl), so
<out>/probes.json lists each service with its address and HTTP probes, for a test to poll from
the host as the kubelet would:

    [{"service": "sluice-driver-0", "workload": "Deployment/sluice-driver", "ip": "172.28.5.11",
      "port": 8080, "readiness": "/readyz", "liveness": "/healthz", "startup": "/healthz",
      "probes": {"readiness": {"port": 8080, "path": "/readyz", "periodSeconds": 5, …}, …}}, …]

(`port` is the readiness probe's port, else the liveness probe's.)

<out>/cert-hosts.txt lists, one per line, the names and addresses the services are reached at —
every Service alias, `*.<service>.<namespace>.svc` (and `….svc.cluster.local`) for each headless
Service, each service's address, localhost and 127.0.0.1 — for the server certificate of a
development CA (`sluice certs --host`, which deploy/compose/dev-secrets.sh runs).

    kubectl kustomize deploy/k8s/overlays/dev | deploy/compose/generate.py --out DIR
    docker-compose -f DIR/docker-compose.yml up -d

Needs PyYAML (tests/venv.sh installs it).
"""

import argparse
import ipaddress
import json
import os
import re
import shutil
import sys

try:
    import yaml
except ImportError:
    raise SystemExit("generate.py: PyYAML is missing: run it with the venv of tests/venv.sh "
                     "(~/.cache/sluice/venv/bin/python deploy/compose/generate.py …)")

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
FS_GROUP_DEFAULT_MODE = 0o2775


class Unsupported(Exception):
    """A manifest uses something a compose file cannot express."""


def warn(message):
    print(f"generate.py: warning: {message}", file=sys.stderr)


# --- input -------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("manifests", nargs="?", default="-", help="rendered YAML (default: stdin)")
    p.add_argument("--out", default=".", help="directory for docker-compose.yml, configmaps/, probes.json")
    p.add_argument("--project", default="sluice", help="compose project and network name (default: sluice)")
    p.add_argument("--subnet", default="172.28.5.0/24", help="the network's subnet (default: 172.28.5.0/24)")
    p.add_argument("--data-dir", default="data",
                   help="host directory standing in for the PersistentVolumeClaim, or holding one "
                        "subdirectory per claim when there are several (relative to --out unless "
                        "absolute; default: data)")
    p.add_argument("--secrets-dir", default="secrets",
                   help="host directory holding one subdirectory per Secret a pod mounts, with one file "
                        "per key (relative to --out unless absolute; default: secrets)")
    p.add_argument("--replicas", action="append", default=[], metavar="NAME=N",
                   help="replicas of the Deployment or StatefulSet NAME (repeatable)")
    p.add_argument("--image", action="append", default=[], metavar="OLD=NEW",
                   help="use image NEW where the manifests say OLD (OLD without a tag matches any tag)")
    p.add_argument("--host-cpus", type=int, default=os.cpu_count() or 1,
                   help="cap CPU limits at this many CPUs: Docker refuses a limit above the host's count "
                        "(default: this host's)")
    p.add_argument("--source", help="what the manifests are, for the header (default: the file name or stdin)")
    return p.parse_args(argv)


def key_values(pairs, what):
    """`["a=1", "b=2"]` -> `{"a": "1", "b": "2"}`."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"generate.py: --{what} takes NAME=VALUE, not {pair!r}")
        out[key] = value
    return out


def load_objects(path):
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    return [o for o in yaml.safe_load_all(text) if isinstance(o, dict) and o.get("kind")]


def objects_of(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


# --- pods ----------------------------------------------------------------------------------------


def pods_of(workload, replicas):
    """The pods a Deployment or StatefulSet would run: name, labels and spec of each."""
    meta, spec = workload["metadata"], workload["spec"]
    count = int(replicas.get(meta["name"], spec.get("replicas", 1)))
    template = spec["template"]
    return [{
        "name": f"{meta['name']}-{ordinal}",
        "namespace": meta.get("namespace", "default"),
        "kind": workload["kind"],
        "workload": meta["name"],
        "service_name": spec.get("serviceName") if workload["kind"] == "StatefulSet" else None,
        "labels": dict(template.get("metadata", {}).get("labels", {})),
        "spec": template["spec"],
    } for ordinal in range(count)]


def assign_addresses(pods, subnet):
    """A static address per pod, after the first ten of the subnet (the gateway is the first)."""
    hosts = list(ipaddress.ip_network(subnet).hosts())
    first = 10 if len(hosts) > 10 + len(pods) else 1
    if len(hosts) < first + len(pods):
        raise SystemExit(f"generate.py: subnet {subnet} has no room for {len(pods)} services")
    for pod, address in zip(pods, hosts[first:]):
        pod["ip"] = str(address)
    return str(hosts[0])


def only_container(pod):
    spec = pod["spec"]
    if spec.get("initContainers") or len(spec["containers"]) != 1:
        raise Unsupported(f"pod {pod['name']}: only pods with one container and no init containers are supported")
    return spec["containers"][0]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


CLUSTER_DOMAIN = "cluster.local"


def qualified(name, namespace):
    """`name` and its fully qualified forms as the cluster's DNS answers them."""
    return [name, f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def network_aliases(pod, services):
    """Service names that resolve to this pod in the cluster, as compose network aliases."""
    aliases = []
    for name, svc in sorted(services.items()):
        if svc["metadata"].get("namespace", "default") != pod["namespace"]:
            continue
        if not selects(svc["spec"].get("selector"), pod["labels"]):
            continue
        aliases.extend(qualified(name, pod["namespace"]))
        if svc["spec"].get("clusterIP") == "None" and pod["service_name"] == name:
            aliases.append(f"{pod['name']}.{name}")
            aliases.extend(qualified(f"{pod['name']}.{name}", pod["namespace"])[1:])
    return aliases


def cert_hosts(pods, services):
    """What a development server certificate must name for the services to verify each other:
    Service aliases, a wildcard per headless Service (a pod's `<pod>.<service>.<namespace>.svc`;
    webpki accepts a wildcard only before two or more labels, so not for `<pod>.<service>`), the
    pods' addresses, and loopback."""
    hosts = []
    for pod in pods:
        for name, svc in sorted(services.items()):
            if svc["metadata"].get("namespace", "default") != pod["namespace"]:
                continue
            if not selects(svc["spec"].get("selector"), pod["labels"]):
                continue
            hosts.extend(qualified(name, pod["namespace"]))
            if svc["spec"].get("clusterIP") == "None":
                hosts.extend("*." + h for h in qualified(name, pod["namespace"])[1:])
    hosts.extend(["localhost", "127.0.0.1"])
    hosts.extend(pod["ip"] for pod in pods)
    return list(dict.fromkeys(hosts))


# --- environment ---------------------------------------------------------------------------------

REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, env):
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`,
    anything else is left as written."""
    def replace(match):
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return REF.sub(replace, str(text))


def field_value(path, pod, gateway):
    """A Downward API fieldRef as the kubelet fills it in."""
    simple = {
        "metadata.name": pod["name"],
        "metadata.namespace": pod["namespace"],
        "status.podIP": pod["ip"],
        "status.podIPs": pod["ip"],
        "status.hostIP": gateway,
        "spec.nodeName": "docker",
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
    }
    if path in simple:
        return simple[path]
    label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
    if label:
        return pod["labels"].get(label.group(1), "")
    raise Unsupported(f"pod {pod['name']}: fieldRef {path} is not supported")


def secret_missing(kind, ref, pod):
    """Secrets are not copied into compose files: an optional one is left out, a required one stops."""
    if ref.get("optional"):
        warn(f"pod {pod['name']}: optional {kind} {ref.get('name')} left out (Secrets are not rendered)")
        return
    raise Unsupported(f"pod {pod['name']}: required {kind} {ref.get('name')}: Secrets are not rendered into "
                      "compose files; make it optional or generate from an overlay without it")


def container_env(container, pod, configmaps, gateway):
    """The container's environment, in Kubernetes' order: envFrom first, then env, each value
    expanded against the variables defined before it."""
    env = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            cm = configmaps.get(source["configMapRef"]["name"], {})
            for key, value in cm.get("data", {}).items():
                env[prefix + key] = value
        elif "secretRef" in source:
            secret_missing("Secret", source["secretRef"], pod)
    for var in container.get("env", []):
        name, value_from = var["name"], var.get("valueFrom")
        if value_from is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in value_from:
            env[name] = field_value(value_from["fieldRef"]["fieldPath"], pod, gateway)
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            env[name] = configmaps[ref["name"]]["data"][ref["key"]]
        elif "secretKeyRef" in value_from:
            secret_missing("Secret key", value_from["secretKeyRef"], pod)
        else:
            raise Unsupported(f"pod {pod['name']}: env {name}: {sorted(value_from)} is not supported")
    return env


# --- volumes -------------------------------------------------------------------------------------


def write_configmap(cm, items, out_dir):
    """Writes a ConfigMap's keys as files under <out>/configmaps/<name>/, as a volume shows them."""
    name = cm["metadata"]["name"]
    directory = os.path.join(out_dir, "configmaps", name)
    os.makedirs(directory, exist_ok=True)
    data = cm.get("data", {})
    wanted = items or [{"key": k, "path": k} for k in sorted(data)]
    for item in wanted:
        path = os.path.join(directory, item["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(data[item["key"]])
        os.chmod(path, 0o644)
    return os.path.join(".", "configmaps", name)


def claim_directories(pods, data_dir):
    """Host directories for the PersistentVolumeClaims the pods mount, as compose paths: the data
    dir itself for a single claim, a subdirectory per claim otherwise."""
    claims = sorted({v["persistentVolumeClaim"]["claimName"] for pod in pods
                     for v in pod["spec"].get("volumes", []) if "persistentVolumeClaim" in v})
    base = data_dir if os.path.isabs(data_dir) else os.path.join(".", data_dir)
    if len(claims) == 1:
        return {claims[0]: base}
    return {claim: os.path.join(base, claim) for claim in claims}


def prepare_claim_directory(source, pod, out_dir):
    """Creates a claim's host directory, owned as the pod's fsGroup would make it."""
    host = os.path.join(out_dir, source)
    os.makedirs(host, exist_ok=True)
    security = pod["spec"].get("securityContext", {})
    owner, group = security.get("runAsUser"), security.get("fsGroup", security.get("runAsGroup"))
    if os.geteuid() == 0 and owner is not None:
        os.chown(host, owner, group if group is not None else owner)
        os.chmod(host, FS_GROUP_DEFAULT_MODE)
    elif owner is not None and os.stat(host).st_uid != owner:
        warn(f"{host} must be writable by uid {owner}: sudo chown {owner}:{group} {host}")


def empty_dir_options(empty_dir, pod):
    """tmpfs options for an emptyDir: writable by all as the kubelet makes it, owned by the pod's
    user and fsGroup (Docker copies the ownership of a directory the image has at that path onto
    the tmpfs, so the mode alone is not enough), and its size limit."""
    security = pod["spec"].get("securityContext", {})
    options = ["mode=1777"]
    if security.get("runAsUser") is not None:
        options.append(f"uid={security['runAsUser']}")
    group = security.get("fsGroup", security.get("runAsGroup"))
    if group is not None:
        options.append(f"gid={group}")
    if empty_dir.get("sizeLimit"):
        options.append(f"size={quantity_bytes(empty_dir['sizeLimit'])}")
    return ",".join(options)


def secret_directory(volume, pod, secrets_dir):
    """The host directory standing in for a required Secret volume, as a compose path."""
    secret = volume["secret"]
    if secret.get("items"):
        raise Unsupported(f"pod {pod['name']}: Secret volume {secret.get('secretName')}: items are not supported")
    base = secrets_dir if os.path.isabs(secrets_dir) else os.path.join(".", secrets_dir)
    return os.path.join(base, secret["secretName"])


def mounts(container, pod, configmaps, out_dir, claims, secrets_dir):
    """Compose bind mounts and tmpfs mounts for the container's volumeMounts."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    binds, tmpfs = [], []
    for mount in container.get("volumeMounts", []):
        volume, target = volumes[mount["name"]], mount["mountPath"]
        sub = mount.get("subPath")
        mode = ":ro" if mount.get("readOnly") else ""
        if "configMap" in volume:
            cm = configmaps[volume["configMap"]["name"]]
            source = write_configmap(cm, volume["configMap"].get("items"), out_dir)
            binds.append(f"{os.path.join(source, sub) if sub else source}:{target}:ro")
        elif "persistentVolumeClaim" in volume:
            source = claims[volume["persistentVolumeClaim"]["claimName"]]
            prepare_claim_directory(source, pod, out_dir)
            binds.append(f"{os.path.join(source, sub) if sub else source}:{target}{mode}")
        elif "emptyDir" in volume:
            tmpfs.append(f"{target}:{empty_dir_options(volume['emptyDir'], pod)}")
        elif "secret" in volume and volume["secret"].get("optional"):
            secret_missing("Secret volume", {"name": volume["secret"].get("secretName"), "optional": True}, pod)
        elif "secret" in volume:
            source = secret_directory(volume, pod, secrets_dir)
            binds.append(f"{os.path.join(source, sub) if sub else source}:{target}:ro")
        else:
            raise Unsupported(f"pod {pod['name']}: volume {mount['name']}: only configMap, "
                              "persistentVolumeClaim, emptyDir and secret volumes are supported")
    return binds, tmpfs


# --- security and resources ----------------------------------------------------------------------


def security(container, pod):
    """User, groups, read-only root, capabilities and no-new-privileges, as compose keys."""
    pod_ctx = pod["spec"].get("securityContext", {})
    ctx = {**pod_ctx, **container.get("securityContext", {})}
    out = {}
    if ctx.get("runAsUser") is not None:
        group = ctx.get("runAsGroup")
        out["user"] = f"{ctx['runAsUser']}:{group}" if group is not None else str(ctx["runAsUser"])
    if pod_ctx.get("fsGroup") is not None:
        out["group_add"] = [str(pod_ctx["fsGroup"])]
    if ctx.get("readOnlyRootFilesystem"):
        out["read_only"] = True
    capabilities = ctx.get("capabilities", {})
    if capabilities.get("drop"):
        out["cap_drop"] = list(capabilities["drop"])
    if capabilities.get("add"):
        out["cap_add"] = list(capabilities["add"])
    if ctx.get("allowPrivilegeEscalation") is False:
        out["security_opt"] = ["no-new-privileges:true"]
    if ctx.get("privileged"):
        out["privileged"] = True
    return out


def quantity_bytes(quantity):
    """A Kubernetes memory quantity (`512Mi`, `1G`, `1000`) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity))
    if not match or (match.group(2) and match.group(2) not in units):
        raise Unsupported(f"quantity {quantity!r} is not supported")
    return int(float(match.group(1)) * units.get(match.group(2), 1))


def cpu_cores(quantity):
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def resources(container, host_cpus):
    """CPU and memory limits (and the memory request as a reservation). Docker refuses more CPUs
    than the host has, so the CPU limit is capped at --host-cpus."""
    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    out = {}
    if "cpu" in limits:
        cpus = cpu_cores(limits["cpu"])
        if cpus > host_cpus:
            warn(f"container {container['name']}: CPU limit {cpus} capped at {host_cpus} (--host-cpus)")
        out["cpus"] = min(cpus, host_cpus)
    if "memory" in limits:
        out["mem_limit"] = quantity_bytes(limits["memory"])
    if "memory" in requests:
        out["mem_reservation"] = quantity_bytes(requests["memory"])
    return out


# --- probes --------------------------------------------------------------------------------------


def probe_entry(container, pod):
    """The pod's entry in probes.json: address, and HTTP probes with numeric ports."""
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    out = {}
    for kind in ("startup", "liveness", "readiness"):
        probe = container.get(f"{kind}Probe")
        if not probe:
            continue
        if "httpGet" not in probe:
            warn(f"pod {pod['name']}: {kind} probe is not httpGet; left out of probes.json")
            continue
        http = probe["httpGet"]
        port = http["port"]
        out[kind] = {
            "port": ports[port] if isinstance(port, str) else port,
            "path": http.get("path", "/"),
            "scheme": http.get("scheme", "HTTP"),
            "initialDelaySeconds": probe.get("initialDelaySeconds", 0),
            "periodSeconds": probe.get("periodSeconds", 10),
            "timeoutSeconds": probe.get("timeoutSeconds", 1),
            "failureThreshold": probe.get("failureThreshold", 3),
        }
    entry = {"service": pod["name"], "workload": f"{pod['kind']}/{pod['workload']}", "ip": pod["ip"]}
    main = out.get("readiness") or out.get("liveness")
    if main:
        entry["port"] = main["port"]
    entry.update({kind: probe["path"] for kind, probe in out.items()})
    entry["probes"] = out
    return entry


# --- compose -------------------------------------------------------------------------------------


def map_image(image, mapping):
    if image in mapping:
        return mapping[image]
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    new = mapping.get(name)
    if new is None:
        return image
    return new if ":" in new.split("/")[-1] or not tag else f"{new}:{tag}"


def escape(value):
    """docker-compose interpolates `$VAR`; a literal `$` is written `$$`."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    return value


def compose_service(pod, services, configmaps, claims, images, args, gateway):
    container = only_container(pod)
    env = container_env(container, pod, configmaps, gateway)
    binds, tmpfs = mounts(container, pod, configmaps, args.out, claims, args.secrets_dir)
    svc = {"image": map_image(container["image"], images), "hostname": pod["name"]}
    if "command" in container:
        svc["entrypoint"] = [expand(a, env) for a in container["command"]]
        svc["command"] = [expand(a, env) for a in container.get("args", [])]
    elif "args" in container:
        svc["command"] = [expand(a, env) for a in container["args"]]
    if container.get("workingDir"):
        svc["working_dir"] = container["workingDir"]
    if env:
        svc["environment"] = env
    if binds:
        svc["volumes"] = binds
    if tmpfs:
        svc["tmpfs"] = tmpfs
    svc.update(security(container, pod))
    svc.update(resources(container, args.host_cpus))
    svc["stop_grace_period"] = f"{pod['spec'].get('terminationGracePeriodSeconds', 30)}s"
    svc["restart"] = "unless-stopped"
    svc["labels"] = pod["labels"]
    svc["networks"] = {"default": {"ipv4_address": pod["ip"], "aliases": network_aliases(pod, services)}}
    return escape(svc), probe_entry(container, pod)


def write_outputs(args, compose, probe_list, hosts, source):
    os.makedirs(args.out, exist_ok=True)
    header = (f"# Generated by deploy/compose/generate.py from {source}; regenerate rather than edit.\n"
              f"# docker-compose -f docker-compose.yml up -d   (docker-compose 1.29, format 2.4)\n")
    with open(os.path.join(args.out, "docker-compose.yml"), "w", encoding="utf-8") as f:
        f.write(header + yaml.safe_dump(compose, sort_keys=False, width=120))
    with open(os.path.join(args.out, "probes.json"), "w", encoding="utf-8") as f:
        json.dump(probe_list, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "cert-hosts.txt"), "w", encoding="utf-8") as f:
        f.write(f"# Generated by deploy/compose/generate.py from {source}: the names and addresses a development\n"
                "# server certificate must hold (sluice certs --host; deploy/compose/dev-secrets.sh).\n")
        f.write("".join(f"{h}\n" for h in hosts))
    # docker-compose reads the project name from .env in the compose file's directory.
    with open(os.path.join(args.out, ".env"), "w", encoding="utf-8") as f:
        f.write(f"COMPOSE_PROJECT_NAME={args.project}\n")


def main(argv):
    args = parse_args(argv)
    replicas, images = key_values(args.replicas, "replicas"), key_values(args.image, "image")
    objects = load_objects(args.manifests)
    services, configmaps = objects_of(objects, "Service"), objects_of(objects, "ConfigMap")
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    if not workloads:
        raise SystemExit("generate.py: no Deployment or StatefulSet in the input")
    unknown = set(replicas) - {w["metadata"]["name"] for w in workloads}
    if unknown:
        raise SystemExit(f"generate.py: --replicas names no workload: {', '.join(sorted(unknown))}")
    pods = [pod for w in workloads for pod in pods_of(w, replicas)]
    gateway = assign_addresses(pods, args.subnet)
    shutil.rmtree(os.path.join(args.out, "configmaps"), ignore_errors=True)  # ours: no stale keys

    compose = {"version": "2.4", "services": {}, "networks": {
        "default": {"name": args.project, "driver": "bridge",
                    "ipam": {"config": [{"subnet": args.subnet, "gateway": gateway}]}}}}
    claims = claim_directories(pods, args.data_dir)
    probe_list = []
    try:
        for pod in pods:
            svc, entry = compose_service(pod, services, configmaps, claims, images, args, gateway)
            compose["services"][pod["name"]] = svc
            probe_list.append(entry)
    except Unsupported as e:
        raise SystemExit(f"generate.py: {e}")
    source = args.source or ("stdin" if args.manifests == "-" else args.manifests)
    write_outputs(args, compose, probe_list, cert_hosts(pods, services), source)
    secrets = sorted({v["secret"]["secretName"] for pod in pods for v in pod["spec"].get("volumes", [])
                      if "secret" in v and not v["secret"].get("optional")})
    base = args.secrets_dir if os.path.isabs(args.secrets_dir) else os.path.join(args.out, args.secrets_dir)
    missing = [s for s in secrets if not os.path.isdir(os.path.join(base, s))]
    if missing:
        warn(f"the pods mount the Secrets {', '.join(missing)}: put their keys in {base}/<secret>/ before `up` "
             "(deploy/compose/dev-secrets.sh makes development ones)")
    print(f"generate.py: {len(pods)} services on {args.subnet} -> {os.path.join(args.out, 'docker-compose.yml')}",
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
