from cache.client import CacheClient, CacheClientConfig

async def main():
    # Create a client
    config = CacheClientConfig(
        nodes=["http://localhost:8000", "http://localhost:8001"],
        timeout=5.0,
        max_retries=3
    )

    async with CacheClient(config) as client:
        # Put a value
        await client.put("key1", "value1", ttl=3600)

        # Get a value
        value = await client.get("key1")
        print(f"key1 = {value}")

        # Get stats
        stats = await client.get_stats()
        print(f"Stats: {stats}")

if __name__ == "__main__":
    import asyncio
    asyncio.run(main())
