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
