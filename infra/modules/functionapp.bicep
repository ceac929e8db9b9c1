// The Flex Consumption plan and the function app that runs the custom handler. Its app
// settings are applied by appsettings.bicep once the site exists (they name its host).
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

output id string = site.id
output name string = site.name
// The host the platform gave the site ("<name>.azurewebsites.net" unless it hands out
// unique default host names), read rather than built.
output defaultHostName string = site.properties.defaultHostName
output uri string = 'https://${site.properties.defaultHostName}'
// Comma-separated. Read defensively: the property may be absent on Flex Consumption, and
// a missing property would otherwise fail the whole deployment.
output possibleOutboundIpAddresses string = site.properties.?possibleOutboundIpAddresses ?? ''
