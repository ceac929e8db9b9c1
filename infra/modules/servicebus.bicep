// Service Bus namespace and the app's queues. Standard tier: Basic has neither sessions
// nor duplicate detection. Local (SAS key) auth is off: senders and the triggers use the
// app identity (Azure Service Bus Data Sender / Receiver on the namespace).
param name string
param location string
param tags object = {}

@description('Queues: [{ name: string, requiresSession: bool, timeToLive: string (optional ISO 8601, default defaultMessageTimeToLive) }] (other properties are ignored).')
param queues array

@description('Deliveries before a message is dead-lettered. A custom handler cannot dead-letter itself: a non-2xx answer abandons the message, and after this many tries Service Bus dead-letters it.')
param maxDeliveryCount int = 10

@description('Peek-lock duration. The host renews locks while an invocation runs (host.json maxAutoLockRenewalDuration, 5 min), so this only bounds how soon a message held by a crashed instance is redelivered.')
param lockDuration string = 'PT1M'

@description('Duplicate detection window. Every queue gets duplicate detection: messages are wake-ups ("kicks") and scheduled sends whose MessageId makes a retried or repeated send harmless.')
param duplicateDetectionHistoryTimeWindow string = 'PT10M'

@description('Time to live of a message. A wake-up older than this is useless; expired messages go to the dead-letter queue so they stay visible.')
param defaultMessageTimeToLive string = 'P1D'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// requiresSession and requiresDuplicateDetection are fixed when a queue is created: Azure
// refuses to change them on an existing queue.
resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for q in queues: {
    parent: namespace
    name: q.name
    properties: {
      requiresSession: q.requiresSession
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
      maxDeliveryCount: maxDeliveryCount
      lockDuration: lockDuration
      defaultMessageTimeToLive: q.?timeToLive ?? defaultMessageTimeToLive
      deadLetteringOnMessageExpiration: true
      enablePartitioning: false
    }
  }
]

output id string = namespace.id
output name string = namespace.name
// "<name>.servicebus.windows.net" (or the national-cloud equivalent), taken from the
// endpoint "https://<host>:443/" rather than built, for ServiceBusConnection__fullyQualifiedNamespace.
output fullyQualifiedNamespace string = replace(split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0], '/', '')
