// The Flex Consumption plan and the function app that runs the custom handler.
param name string
param planName string
param location string
param tags object = {}

@description('azd service name: azd finds the app to deploy to by the azd-service-name tag.')
param serviceName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Blob endpoint of the storage account holding the deployment container, ending in "/".')
param storageBlobEndpoint string

param deploymentContainerName string

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@maxValue(1000)
param maximumInstanceCount int = 40

@description('Integration subnet (delegated to Microsoft.App/environments); empty for none.')
param virtualNetworkSubnetId string = ''

@description('Every app setting, built in main.bicep.')
param appSettings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings resolve with this identity (default: system identity, which the app has none of).
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      // A custom handler: the host starts host.json's defaultExecutablePath. This replaces
      // FUNCTIONS_WORKER_RUNTIME, which Flex Consumption refuses as an app setting.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// The whole set: settings not listed here are removed on the next `azd provision`.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

output id string = site.id
output name string = site.name
output uri string = 'https://${site.properties.defaultHostName}'
// Comma-separated. Read defensively: the property may be absent on Flex Consumption, and
// a missing property would otherwise fail the whole deployment.
output possibleOutboundIpAddresses string = site.properties.?possibleOutboundIpAddresses ?? ''
