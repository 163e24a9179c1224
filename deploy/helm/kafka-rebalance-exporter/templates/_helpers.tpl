{{/* Name of the chart, or nameOverride. It is the app.kubernetes.io/name
label, which the ServiceMonitor takes as the job name: alerts/alerts.yml's
KafkaExporterDown expects "kafka-rebalance-exporter". */}}
{{- define "kre.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kre.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kre.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kre.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kre.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kre.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kre.sharded" -}}
{{- if gt (int .Values.shards) 1 }}true{{ end -}}
{{- end -}}

{{/* Where Secrets and ConfigMaps are mounted. */}}
{{- define "kre.mountRoot" -}}/etc/kafka-rebalance-exporter{{- end -}}

{{/* Settings the chart derives from its own values; env must not set them. */}}
{{- define "kre.reservedEnv" -}}
{{- list "KRE_BROKERS" "KRE_SHARDS" "KRE_SHARD" "KRE_LISTEN_ADDRESS" "KRE_CONST_LABELS" "KRE_TLS_ENABLED" "KRE_TLS_CA_FILE" "KRE_TLS_CERT_FILE" "KRE_TLS_KEY_FILE" "KRE_SASL_MECHANISM" "KRE_SASL_USERNAME" "KRE_SASL_PASSWORD" "KRE_SASL_PASSWORD_FILE" "KRE_WEB_CONFIG_FILE" | toJson -}}
{{- end -}}

{{/* Checks across values that values.schema.json cannot express. */}}
{{- define "kre.validate" -}}
{{- $reserved := include "kre.reservedEnv" . | fromJsonArray -}}
{{- range $k, $v := .Values.env -}}
{{- if has $k $reserved -}}
{{- if eq $k "KRE_SASL_PASSWORD" -}}
{{- fail "env.KRE_SASL_PASSWORD: put the password in a Secret and name it in sasl.passwordSecret" -}}
{{- end -}}
{{- fail (printf "env.%s: the chart sets it from its values (brokers, shards, constLabels, sasl, tls, webConfig); set those instead" $k) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.sasl.mechanism (not .Values.sasl.username) -}}
{{- fail "sasl.username is required with sasl.mechanism" -}}
{{- end -}}
{{- if and .Values.sasl.mechanism (not .Values.sasl.passwordSecret.name) -}}
{{- fail "sasl.passwordSecret.name is required with sasl.mechanism" -}}
{{- end -}}
{{- if and .Values.sasl.passwordSecret.name (not .Values.sasl.mechanism) -}}
{{- fail "sasl.passwordSecret is set but sasl.mechanism is empty" -}}
{{- end -}}
{{- with .Values.tls.secret -}}
{{- if ne (empty .certKey) (empty .keyKey) -}}
{{- fail "tls.secret.certKey and tls.secret.keyKey are set together or not at all" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.secret.name (not .Values.tls.enabled) -}}
{{- fail "tls.secret.name is set but tls.enabled is false" -}}
{{- end -}}
{{- if and .Values.webConfig.secretName .Values.webConfig.configMapName -}}
{{- fail "webConfig: set secretName or configMapName, not both" -}}
{{- end -}}
{{- end -}}

{{/* The pod template, shared by the Deployment and the StatefulSet. */}}
{{- define "kre.podTemplate" -}}
{{- $root := include "kre.mountRoot" . -}}
{{- $web := or .Values.webConfig.secretName .Values.webConfig.configMapName -}}
metadata:
  labels:
    {{- include "kre.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: exporter
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      env:
        {{- if include "kre.sharded" . }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: KRE_SHARDS
          value: {{ .Values.shards | int | quote }}
        - name: KRE_SHARD
          value: auto
        {{- end }}
        - name: KRE_BROKERS
          value: {{ join "," .Values.brokers | quote }}
        - name: KRE_LISTEN_ADDRESS
          value: {{ printf ":%d" (int .Values.service.port) | quote }}
        {{- with .Values.constLabels }}
        - name: KRE_CONST_LABELS
          value: {{ $pairs := list }}{{ range $k, $v := . }}{{ $pairs = append $pairs (printf "%s=%s" $k (toString $v)) }}{{ end }}{{ join "," $pairs | quote }}
        {{- end }}
        {{- if .Values.sasl.mechanism }}
        - name: KRE_SASL_MECHANISM
          value: {{ .Values.sasl.mechanism | quote }}
        - name: KRE_SASL_USERNAME
          value: {{ .Values.sasl.username | quote }}
        - name: KRE_SASL_PASSWORD_FILE
          value: {{ printf "%s/sasl/%s" $root .Values.sasl.passwordSecret.key | quote }}
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: KRE_TLS_ENABLED
          value: "true"
        {{- with .Values.tls.secret }}
        {{- if .name }}
        {{- if .caKey }}
        - name: KRE_TLS_CA_FILE
          value: {{ printf "%s/tls/%s" $root .caKey | quote }}
        {{- end }}
        {{- if .certKey }}
        - name: KRE_TLS_CERT_FILE
          value: {{ printf "%s/tls/%s" $root .certKey | quote }}
        - name: KRE_TLS_KEY_FILE
          value: {{ printf "%s/tls/%s" $root .keyKey | quote }}
        {{- end }}
        {{- end }}
        {{- end }}
        {{- end }}
        {{- if $web }}
        - name: KRE_WEB_CONFIG_FILE
          value: {{ printf "%s/web/%s" $root .Values.webConfig.key | quote }}
        {{- end }}
        {{- range $k, $v := .Values.env }}
        {{- /* Helm reads numbers in values files as floats: 1000000 would print as 1e+06. */}}
        {{- $s := toString $v }}
        {{- if and (kindIs "float64" $v) (eq $v (floor $v)) }}
        {{- $s = int64 $v | toString }}
        {{- end }}
        - name: {{ $k }}
          value: {{ $s | quote }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.service.port }}
          protocol: TCP
      livenessProbe:
        {{- include "kre.probe" (dict "path" "/healthz" "ctx" .) | nindent 8 }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- include "kre.probe" (dict "path" "/readyz" "ctx" .) | nindent 8 }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- if or .Values.sasl.mechanism .Values.tls.secret.name $web }}
      volumeMounts:
        {{- if .Values.sasl.mechanism }}
        - name: sasl
          mountPath: {{ $root }}/sasl
          readOnly: true
        {{- end }}
        {{- if .Values.tls.secret.name }}
        - name: tls
          mountPath: {{ $root }}/tls
          readOnly: true
        {{- end }}
        {{- if $web }}
        - name: web
          mountPath: {{ $root }}/web
          readOnly: true
        {{- end }}
      {{- end }}
  {{- if or .Values.sasl.mechanism .Values.tls.secret.name $web }}
  volumes:
    {{- if .Values.sasl.mechanism }}
    - name: sasl
      secret:
        secretName: {{ .Values.sasl.passwordSecret.name }}
        items:
          - key: {{ .Values.sasl.passwordSecret.key }}
            path: {{ .Values.sasl.passwordSecret.key }}
    {{- end }}
    {{- with .Values.tls.secret }}
    {{- if .name }}
    - name: tls
      secret:
        secretName: {{ .name }}
        items:
          {{- range $k := list .caKey .certKey .keyKey }}
          {{- if $k }}
          - key: {{ $k }}
            path: {{ $k }}
          {{- end }}
          {{- end }}
    {{- end }}
    {{- end }}
    {{- if .Values.webConfig.secretName }}
    - name: web
      secret:
        secretName: {{ .Values.webConfig.secretName }}
    {{- else if .Values.webConfig.configMapName }}
    - name: web
      configMap:
        name: {{ .Values.webConfig.configMapName }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* A probe's handler: HTTP GET of path, or a TCP check when the web
configuration asks for basic auth (the kubelet would get 401). */}}
{{- define "kre.probe" -}}
{{- if .ctx.Values.webConfig.basicAuth -}}
tcpSocket:
  port: metrics
{{- else -}}
httpGet:
  path: {{ .path }}
  port: metrics
  scheme: {{ .ctx.Values.webConfig.scheme }}
{{- end -}}
{{- end -}}
