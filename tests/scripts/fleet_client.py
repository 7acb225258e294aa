# 3,000 keep-alive GETs over N connections from N loopback sources (issue 18
# request-path benchmark): fleet_client.py PORT REQUESTS SOURCES; prints non-200s.
import http.client, sys
port, n, sources = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conns = [http.client.HTTPConnection("127.0.0.1", port, source_address=(f"127.0.{i//200}.{i%200+2}", 0)) for i in range(sources)]
bad = 0
for i in range(n):
    c = conns[i % sources]
    c.request("GET", "/")
    r = c.getresponse(); r.read()
    if r.status != 200: bad += 1
print(bad)
