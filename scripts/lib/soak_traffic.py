"""The parts of scripts/soak's load that `sluice loadtest` does not make: made-up keys from one
address (about 20 requests/s, each a new random key) and a key rotated every minute (each new
secret used at once). Runs for the given seconds over HTTPS with the cluster's CA; prints counts."""
import http.client
import json
import secrets
import ssl
import sys
import time

port, ca, admin_key, seconds = int(sys.argv[1]), sys.argv[2], open(sys.argv[3]).read().strip(), float(sys.argv[4])
context = ssl.create_default_context(cafile=ca)
setosa = json.dumps({"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}})


def connection():
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)


def call(conn, method, path, key, body=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data


conn = connection()
status, data = call(conn, "POST", "/v1/keys", admin_key, json.dumps({"name": "soak rotated", "scopes": ["predict"]}))
assert status == 201, (status, data)
rotated = json.loads(data)
counts = {"made_up": {}, "rotations": 0, "rotated_key": {}}
deadline = time.monotonic() + seconds
next_rotation = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        made_up = f"sk_{secrets.token_hex(6)}_{secrets.token_hex(32)}"
        status, _ = call(conn, "POST", "/v1/predict", made_up, setosa)
        counts["made_up"][status] = counts["made_up"].get(status, 0) + 1
        if time.monotonic() >= next_rotation:
            status, data = call(conn, "POST", f"/v1/keys/{rotated['id']}/rotate", admin_key, "{}")
            if status == 200:
                rotated["key"] = json.loads(data)["key"]
                counts["rotations"] += 1
            next_rotation += 60
        status, _ = call(conn, "POST", "/v1/predict", rotated["key"], setosa)
        counts["rotated_key"][status] = counts["rotated_key"].get(status, 0) + 1
    except (OSError, http.client.HTTPException):
        conn.close()
        conn = connection()
    time.sleep(0.05)
call(conn, "DELETE", f"/v1/keys/{rotated['id']}", admin_key)
print(json.dumps(counts, sort_keys=True))
