{{- define "contprof.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "contprof.labels" -}}
app.kubernetes.io/name: contprof
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "contprof.selectorLabels" -}}
app.kubernetes.io/name: contprof
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The collector configuration (config.yaml of the config ConfigMap). */}}
{{- define "contprof.config" -}}
extensions:
  health_check:
    endpoint: "0.0.0.0:{{ .Values.healthCheck.port }}"
  file_storage:
    directory: /var/lib/contprof
    create_directory: true
  profilingpolicy:
    # The policies ConfigMap, watched: an edit is live without a restart.
    policy_file: /etc/contprof/policies/policies.yaml
    limits: {{ toJson .Values.limits }}
    api:
      endpoint: localhost:7733
    storage: file_storage
receivers:
  ebpfprocess:
    collection_interval: {{ .Values.receiver.collection_interval }}
    # The node name (downward API), not the pod's host name.
    host_name: ${env:K8S_NODE_NAME}
    profiling: {{ toJson .Values.receiver.profiling }}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: {{ .Values.memoryLimiter.limit_mib }}
    spike_limit_mib: {{ .Values.memoryLimiter.spike_limit_mib }}
  continuousprofiling: {}
  batch: {}
exporters:
  otlp_grpc:
    endpoint: {{ .Values.exporter.endpoint | quote }}
    tls:
      insecure: {{ .Values.exporter.insecure }}
    {{- with .Values.exporter.headers }}
    headers: {{ toJson . }}
    {{- end }}
    sending_queue:
      enabled: true
      queue_size: 1000
    retry_on_failure:
      enabled: true
      max_elapsed_time: 10m
service:
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 8888
  extensions: [health_check, file_storage, profilingpolicy]
  pipelines:
    metrics:
      receivers: [ebpfprocess]
      processors: [memory_limiter, continuousprofiling, batch]
      exporters: [otlp_grpc]
    profiles:
      receivers: [ebpfprocess]
      processors: [memory_limiter]
      exporters: [otlp_grpc]
    logs:
      receivers: [ebpfprocess]
      processors: [memory_limiter, batch]
      exporters: [otlp_grpc]
{{- end -}}
