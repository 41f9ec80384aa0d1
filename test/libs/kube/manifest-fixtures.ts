/** A Service manifest whose clusterIP and port follow `port` (so content changes are visible). */
export const service = (name: string, port = 80, namespace = 'default') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.${port % 250}
  ports:
  - name: http
    port: ${port}
    protocol: TCP
`;

/** An EndpointSlice manifest of `service` with `count` IPv4 endpoints from 10.<first>.0.0 upwards, one per line. */
export const endpointSlice = (name: string, serviceName: string, count: number, first = 1) =>
  `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: default
  labels: {kubernetes.io/service-name: ${serviceName}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${Array.from({ length: count }, (_, i) => `- {addresses: [10.${first + (i >> 16)}.${(i >> 8) & 255}.${i & 255}], conditions: {ready: true}}\n`).join('')}`;
